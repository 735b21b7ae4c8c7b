//! Membership through the node: announcing this node to the mesh when it starts, now
//! and then while it runs and when it stops; taking, checking and passing on other
//! nodes' announcements; telling a newly linked peer every member; and telling the
//! clients who joined, left or went out of reach, many at once as one line.
//!
//! The period adapts to the mesh: a node announces itself about every
//! `members × announcement size × links / ANNOUNCE_BUDGET` seconds, so that all the
//! announcements a node receives stay near that budget however large the mesh grows.

use std::time::{Duration, Instant};

use crate::wire::member::{Announce, MemberRecord, MAX_NICKS};

use crate::proto::cause::Cause;
use crate::proto::conn::Role;
use crate::proto::ids::{ConnId, NodeId};
use crate::proto::members::{Change, Departure, Gone, MAX_PERIOD, MIN_GAP};
use crate::proto::secure::node_id_of;
use crate::proto::timers::Timer;

use super::Node;

/// Bytes per second of other nodes' announcements a node takes at most, copies on every
/// link included, once the mesh is large enough for the period to grow.
pub const ANNOUNCE_BUDGET: u64 = 2048;

/// Joins are told to clients this long after the first of them, together: a mended
/// partition brings many members back within a moment.
const JOIN_GATHER: Duration = Duration::from_millis(500);

/// More members than this joining or going at once are told as one line.
const TOLD_ONE_BY_ONE: usize = 3;

/// A change of the nicks this node's clients use is announced at most this often.
const NICKS_GAP: Duration = Duration::from_secs(5);

impl Node {
    /// Announces this node: at start, when its period is up, when its nicks changed,
    /// and (leaving) when it stops.
    pub(super) fn announce(&mut self, now: Instant, leaving: bool) {
        let period = self.announce_period();
        let nicks = self.own_nicks();
        let record = self.author.announce(
            self.announced.serial,
            self.wall_ms(now),
            leaving,
            u32::try_from(period.as_secs()).unwrap_or(u32::MAX),
            &nicks,
        );
        self.announced.serial += 1;
        self.announced.at = Some(now);
        self.announced.nicks = nicks;
        let parsed = MemberRecord::parse(&record).expect("this node's announcements are valid");
        self.members.write_own(now, &parsed);
        self.frame_buf.clear();
        Announce::encode(&mut self.frame_buf, self.cfg.hop_limit, &record);
        self.send_frame_to_peers(now, None);
        if !leaving {
            // Jittered, so that nodes started together do not announce together.
            let next = period.mul_f64(0.75 + 0.25 * self.random_unit());
            self.set_announce_timer(Some(now + next.max(MIN_GAP)));
        }
    }

    /// The node stops: its peers are told it leaves.
    pub fn handle_stop(&mut self, now: Instant) {
        if self.cfg.announce_interval.is_none() {
            return;
        }
        self.set_announce_timer(None);
        self.announce(now, true);
        self.reap(now);
    }

    /// How long this node waits between its announcements.
    fn announce_period(&self) -> Duration {
        let size = self.members.get(self.id).map_or(128, |m| m.record.len()) as u64;
        let links = self.linked.len().max(1) as u64;
        let secs = self.members.listed() as u64 * size * links / ANNOUNCE_BUDGET;
        let shortest = self.cfg.announce_interval.unwrap_or(MAX_PERIOD);
        Duration::from_secs(secs).clamp(shortest, MAX_PERIOD)
    }

    /// The nicks this node announces: its own, then its clients' (each once).
    fn own_nicks(&self) -> Vec<String> {
        let mut nicks = vec![self.cfg.nick.clone()];
        for (_, conn) in &self.conns {
            if let Role::Client(client) = &conn.role {
                if nicks.len() < MAX_NICKS && !nicks.contains(&client.nick) && conn.is_client() {
                    nicks.push(client.nick.clone());
                }
            }
        }
        nicks
    }

    /// A client attached, left or took another nick: if the nicks to announce changed,
    /// an announcement is due soon.
    pub(super) fn nicks_changed(&mut self, now: Instant) {
        if self.cfg.announce_interval.is_none() || self.own_nicks() == self.announced.nicks {
            return;
        }
        let gap = self.announced.at.map_or(now, |at| at + NICKS_GAP);
        let soon = (now + MIN_GAP).max(gap);
        if self.announce_deadline.is_none_or(|at| at > soon) {
            self.set_announce_timer(Some(soon));
        }
    }

    fn set_announce_timer(&mut self, at: Option<Instant>) {
        let slot = &mut self.announce_deadline;
        self.fx.timers.set(ConnId::NODE, Timer::Announce, slot, at);
    }

    /// An announcement from a peer: an old copy is dropped; anything else must bear
    /// its node's signature, or the peer that sent it is cut off.
    pub(super) fn peer_member(&mut self, now: Instant, id: ConnId, announce: Announce<'_>) {
        let record = announce.record;
        if self.members.is_old(now, &record) {
            return;
        }
        let member = node_id_of(record.key);
        if !self.verifier.verify_member(&record) {
            self.forged += 1;
            return self.doom(id, Cause::Forged { author: member });
        }
        let change = self.members.admit(now, &record);
        if let Some(hops) = announce.hops.min(self.cfg.hop_limit).checked_sub(1) {
            if hops > 0 {
                self.frame_buf.clear();
                Announce::encode(&mut self.frame_buf, hops, record.bytes());
                self.send_frame_to_peers(now, Some(id));
            }
        }
        match change {
            Change::Joined => {
                if self.joined.is_empty() {
                    self.arm_members_timer(now + JOIN_GATHER);
                }
                self.joined.push(member);
            }
            Change::Left => {
                let nicks = record.nicks().map(str::to_owned).collect();
                self.tell_departures(now, &[Departure { id: member, nicks }], Gone::Left);
            }
            Change::Renamed { before } if !self.joined.contains(&member) => {
                let after: Vec<String> = record.nicks().map(str::to_owned).collect();
                let only_in = |these: &[String], those: &[String]| -> Vec<String> {
                    (these.iter())
                        .filter(|n| !those.contains(n))
                        .cloned()
                        .collect()
                };
                let came = [(member, only_in(&after, &before))];
                let went = [(member, only_in(&before, &after))];
                self.irc_members(now, &went, Some("left"));
                self.irc_members(now, &came, None);
            }
            Change::Renamed { .. } | Change::Renewed | Change::Nothing => {}
        }
    }

    /// The members timer: joins gathered since the first are told, and the table is
    /// swept when its turn is due.
    pub(super) fn members_due(&mut self, now: Instant) {
        let joined: Vec<(NodeId, Vec<String>)> = (std::mem::take(&mut self.joined).iter())
            .filter_map(|&id| Some((id, self.members.get(id)?.nicks.clone())))
            .collect();
        if joined.len() > TOLD_ONE_BY_ONE {
            let n = joined.len();
            self.notify_clients(now, format_args!("{n} members joined"));
        } else {
            for (id, nicks) in &joined {
                let nick = self.nicks.shown(now, &nicks[0], *id);
                self.notify_control_clients(now, format_args!("join {id} {nick}"));
            }
        }
        self.irc_members(now, &joined, None);
        let Some(every) = self.sweep_every() else {
            return;
        };
        if self.sweep_at <= now {
            let gone = self.members.sweep(now);
            self.tell_departures(now, &gone, Gone::OutOfReach);
            self.sweep_at = now + every;
        }
        self.arm_members_timer(self.sweep_at);
    }

    /// How often the table is swept: a few times per shortest period; never while this
    /// node takes no part in membership.
    fn sweep_every(&self) -> Option<Duration> {
        let interval = self.cfg.announce_interval?;
        Some((interval / 4).clamp(Duration::from_millis(250), Duration::from_secs(30)))
    }

    pub(super) fn arm_members_timer(&mut self, at: Instant) {
        if self.members_deadline.is_none_or(|armed| armed > at) {
            let slot = &mut self.members_deadline;
            self.fx
                .timers
                .set(ConnId::NODE, Timer::Members, slot, Some(at));
        }
    }

    fn tell_departures(&mut self, now: Instant, gone: &[Departure], why: Gone) {
        let (word, many) = match why {
            Gone::Left => ("leave", "left"),
            Gone::OutOfReach => ("unreachable", "out of reach"),
        };
        let members: Vec<(NodeId, Vec<String>)> =
            (gone.iter()).map(|d| (d.id, d.nicks.clone())).collect();
        self.irc_members(now, &members, Some(many));
        if gone.len() > TOLD_ONE_BY_ONE {
            let n = gone.len();
            return self.notify_clients(now, format_args!("{n} members {many}"));
        }
        for departure in gone {
            let nick = self.nicks.shown(now, &departure.nicks[0], departure.id);
            self.notify_control_clients(now, format_args!("{word} {} {nick}", departure.id));
        }
    }

    /// Queues the next member's announcement for a newly linked peer; `false` once
    /// every one was sent.
    pub(super) fn send_next_member(&mut self, now: Instant, id: ConnId) -> bool {
        let Some(remote) = self.conns[id.slot].peer_mut().and_then(|p| p.remote_mut()) else {
            return false;
        };
        let Some(cursor) = remote.members_cursor else {
            return false;
        };
        let Some((member, record)) = self.members.next_after(cursor) else {
            remote.members_cursor = None;
            return false;
        };
        remote.members_cursor = Some(Some(member));
        self.frame_buf.clear();
        Announce::encode(&mut self.frame_buf, self.cfg.hop_limit, record);
        let conn = &mut self.conns[id.slot];
        (self.fx).enqueue(conn, &self.frame_buf, now, &self.cfg.limits);
        true
    }

    /// `/who`: every listed member, then how many.
    pub(super) fn reply_who(&mut self, now: Instant, id: ConnId) {
        let lines: Vec<String> = (self.members.live())
            .map(|(member, m)| {
                let seen = now.saturating_duration_since(m.heard).as_secs();
                let seen = if member == self.id { 0 } else { seen };
                let mut line = format!(
                    "member {member} {} {seen}s",
                    self.nicks.shown(now, &m.nicks[0], member)
                );
                for nick in &m.nicks[1..] {
                    line.push(' ');
                    line.push_str(&self.nicks.shown(now, nick, member));
                }
                line
            })
            .collect();
        for line in &lines {
            self.reply(now, id, format_args!("{line}"));
        }
        self.reply(now, id, format_args!("{} members", lines.len()));
    }
}
