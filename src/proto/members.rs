//! The member table: every node heard from lately, as its latest signed announcement
//! says, and the members that left or went out of reach, kept a while so that an old
//! copy of their announcements cannot bring them back.
//!
//! It holds only announcements whose signature held; checking them, passing them on
//! and telling clients is the node's business.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::wire::lines::KEY_LEN;
use crate::wire::member::MemberRecord;

use super::ids::NodeId;
use super::secure::node_id_of;

/// Longest announcement period a member may claim: one that claims more is judged by
/// this, so that a member cannot stay listed for ever after it is gone.
pub const MAX_PERIOD: Duration = Duration::from_secs(24 * 3600);

/// Announcement periods a member may stay silent before it is out of reach.
const SILENT_PERIODS: u32 = 3;

/// Once one member is found out of reach, those silent for this many periods (and a
/// half) go with it: a partition takes many at once, whose last announcements were
/// spread over a period. A member that is in reach is never silent for more than one.
const SILENT_WITH_OTHERS: f64 = 1.5;

/// Added to every silence for the time an announcement takes to cross the mesh.
const CROSSING: Duration = Duration::from_secs(2);

/// A member whose announcements come faster than this has the extra ones dropped
/// unchecked, so a member cannot make every node check signatures at its pace. A node
/// never announces itself so often (a leave, or a new run, is always taken).
pub const MIN_GAP: Duration = Duration::from_secs(1);

/// Why a member left the table's live part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// It said so.
    Left,
    /// Nothing was heard of it for too long.
    OutOfReach,
}

/// A node of the mesh, as its latest announcement says.
#[derive(Debug)]
pub struct Member {
    pub key: [u8; KEY_LEN],
    pub epoch: u64,
    pub serial: u64,
    /// The node's own nick first, then those of its clients.
    pub nicks: Vec<String>,
    /// Within which it announces itself again (at most [`MAX_PERIOD`]).
    pub period: Duration,
    /// When its latest announcement arrived.
    pub heard: Instant,
    /// That announcement, to pass on to a newly linked peer.
    pub record: Vec<u8>,
    /// `Some` once it left or went out of reach: it is kept a while, not listed.
    pub gone: Option<Gone>,
}

/// What an announcement changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A member not listed before: new, or back.
    Joined,
    /// A listed member announced itself again, with the same nicks.
    Renewed,
    /// A listed member announced itself again with other nicks; these were its last.
    Renamed { before: Vec<String> },
    /// A listed member left.
    Left,
    /// A member not listed says it leaves: nothing to tell.
    Nothing,
}

/// A member that went out of the live part of the table in a sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departure {
    pub id: NodeId,
    pub nicks: Vec<String>,
}

/// Every member this node knows of, this node among them.
#[derive(Debug)]
pub struct Members {
    own: NodeId,
    table: BTreeMap<NodeId, Member>,
    /// Most entries, live or gone, the table holds.
    max: usize,
}

impl Members {
    pub fn new(own: NodeId, max: usize) -> Self {
        Members {
            own,
            table: BTreeMap::new(),
            max: max.max(1),
        }
    }

    /// Whether `record` can change nothing: the table holds this announcement or a
    /// later one of the same node, or it comes too soon after the last one. Such a copy
    /// is dropped without checking its signature.
    pub fn is_old(&self, now: Instant, record: &MemberRecord<'_>) -> bool {
        let Some(member) = self.table.get(&node_id_of(record.key)) else {
            return false;
        };
        if member.key != *record.key {
            // Another key with the same id: eight bytes of a key do not collide by
            // chance, and the first one holds it.
            return true;
        }
        let newer = (record.epoch, record.serial) > (member.epoch, member.serial);
        let too_soon = record.epoch == member.epoch
            && !record.leaving
            && member.gone.is_none()
            && now.saturating_duration_since(member.heard) < MIN_GAP;
        !newer || too_soon
    }

    /// Takes an announcement whose signature held and that [`Members::is_old`] let
    /// through.
    pub fn admit(&mut self, now: Instant, record: &MemberRecord<'_>) -> Change {
        let id = node_id_of(record.key);
        let listed = self.table.get(&id).is_some_and(|m| m.gone.is_none());
        if !self.table.contains_key(&id) {
            self.make_room();
        }
        let gone = record.leaving.then_some(Gone::Left);
        let before = self.table.insert(
            id,
            Member {
                key: *record.key,
                epoch: record.epoch,
                serial: record.serial,
                nicks: record.nicks().map(str::to_owned).collect(),
                period: Duration::from_secs(u64::from(record.period_s)).clamp(MIN_GAP, MAX_PERIOD),
                heard: now,
                record: record.bytes().to_vec(),
                gone,
            },
        );
        match (listed, record.leaving) {
            (false, false) => Change::Joined,
            (true, false) => match before {
                Some(before) if !before.nicks.iter().eq(record.nicks()) => Change::Renamed {
                    before: before.nicks,
                },
                _ => Change::Renewed,
            },
            (true, true) => Change::Left,
            (false, true) => Change::Nothing,
        }
    }

    /// Keeps this node's own latest announcement, which never goes out of reach.
    pub fn write_own(&mut self, now: Instant, record: &MemberRecord<'_>) {
        self.admit(now, record);
    }

    /// Takes out of the live part every member silent for too long, and forgets gone
    /// ones old enough that no copy of theirs is still on its way.
    pub fn sweep(&mut self, now: Instant) -> Vec<Departure> {
        let silent = |m: &Member, periods: f64| {
            now.saturating_duration_since(m.heard) > m.period.mul_f64(periods) + CROSSING
        };
        let own = self.own;
        let live = |(id, m): &(&NodeId, &mut Member)| **id != own && m.gone.is_none();
        let any = (self.table.iter_mut())
            .filter(live)
            .any(|(_, m)| silent(m, f64::from(SILENT_PERIODS)));
        let mut out = Vec::new();
        if any {
            for (&id, member) in self.table.iter_mut().filter(live) {
                if silent(member, SILENT_WITH_OTHERS) {
                    member.gone = Some(Gone::OutOfReach);
                    out.push(Departure {
                        id,
                        nicks: member.nicks.clone(),
                    });
                }
            }
        }
        let kept = 2.0 * f64::from(SILENT_PERIODS);
        (self.table).retain(|_, m| m.gone.is_none() || !silent(m, kept));
        out
    }

    /// Members listed now, this node among them, by id.
    pub fn live(&self) -> impl Iterator<Item = (NodeId, &Member)> + '_ {
        (self.table.iter())
            .filter(|(_, m)| m.gone.is_none())
            .map(|(&id, m)| (id, m))
    }

    /// How many members are listed now (never none: this node is one).
    pub fn listed(&self) -> usize {
        self.live().count()
    }

    /// The listed member of id `id`.
    pub fn get(&self, id: NodeId) -> Option<&Member> {
        self.table.get(&id).filter(|m| m.gone.is_none())
    }

    /// The first listed member after `after` (from the start for `None`) and its
    /// announcement: a newly linked peer is told every one in turn.
    pub fn next_after(&self, after: Option<NodeId>) -> Option<(NodeId, &[u8])> {
        let from = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        (self.table.range((from, std::ops::Bound::Unbounded)))
            .find(|(_, m)| m.gone.is_none())
            .map(|(&id, m)| (id, &m.record[..]))
    }

    /// Makes room for one more entry: a gone member goes first, else the member heard
    /// of least lately, never this node.
    fn make_room(&mut self) {
        if self.table.len() < self.max {
            return;
        }
        let own = self.own;
        let victim = (self.table.iter())
            .filter(|(&id, _)| id != own)
            .min_by_key(|(_, m)| (m.gone.is_none(), m.heard))
            .map(|(&id, _)| id);
        if let Some(id) = victim {
            self.table.remove(&id);
        }
    }
}
