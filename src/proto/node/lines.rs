//! Chat lines through the node: the bursts its clients write, signed and sent as
//! batches; the batches peers send, checked, kept, shown and passed on; and catch-up,
//! the summaries two linked nodes compare and the records each sends the other.
//!
//! A record reaches the duplicate state, a client or another peer only after its
//! signature holds; a copy of lines seen already is dropped unchecked, since it can
//! change nothing.

use std::mem;
use std::time::{Duration, Instant};

use log::debug;

use crate::wire::control;
use crate::wire::lines::{Batch, Have, Record};
use crate::wire::text;

use crate::proto::cause::Cause;
use crate::proto::conn::{Conn, Role};
use crate::proto::ids::{ConnId, NodeId};
use crate::proto::logs::{Admission, FeedKey, Logs, Seen};
use crate::proto::secure::node_id_of;
use crate::proto::timers::Timer;

use super::Node;

/// How long after taking new lines a node tells its peers its summary again, whatever
/// else made them compare: a safety net under the flood and the link-up comparison,
/// which costs nothing while no line is written.
const SYNC_INTERVAL: Duration = Duration::from_secs(30);

/// Catch-up records go into a link's queue only while it holds less than this share
/// of the pause mark: lines written now go first, a catch-up takes what the link has
/// to spare, and never by itself holds the node's other connections back.
const CATCH_UP_SHARE: usize = 4;

/// A caught-up line written this long before it is shown is introduced as late.
const LATE_AFTER_MS: u64 = 5_000;

/// Most lines one `/history` shows, so that its reply fits a client's queue.
pub(super) const MAX_HISTORY: usize = 1000;

impl Node {
    /// A line a local client wrote: the node's other clients see it now, and it is
    /// signed with the rest of what the client wrote in this read.
    pub(super) fn say(&mut self, now: Instant, from: ConnId, text: &str) {
        if text.is_empty() {
            return;
        }
        let time_ms = self.wall_ms(now);
        let Role::Client(client) = &self.conns[from.slot].role else {
            unreachable!("only clients say lines");
        };
        let sealed = self.author.write(time_ms, &client.nick, text);
        let shown = self.nicks.display(now, &client.nick, self.id).into_owned();
        self.irc_chat(self.id, &shown, text, time_ms);
        self.line_buf.clear();
        control::write_chat(&mut self.line_buf, &shown, text);
        self.send_line_to_clients(now, Some(from));
        if let Some(record) = sealed {
            self.publish(now, record);
        }
    }

    /// Signs what the clients wrote since the last call, keeps it and sends it on.
    pub(super) fn publish_written(&mut self, now: Instant) {
        if let Some(record) = self.author.seal() {
            self.publish(now, record);
        }
    }

    fn publish(&mut self, now: Instant, record: Vec<u8>) {
        let parsed = Record::parse(&record).expect("this node's own batches are valid");
        self.logs.write_own(now, &parsed);
        self.sync_later(now);
        self.frame_buf.clear();
        Batch::encode(&mut self.frame_buf, self.cfg.hop_limit, false, &record);
        let (key, first, end) = run_of(&parsed);
        self.spread(now, None, key, first, end);
    }

    /// A batch from a peer: a copy of lines seen is dropped; anything else must bear
    /// its author's signature, or the peer that sent it is cut off.
    pub(super) fn peer_lines(&mut self, now: Instant, id: ConnId, batch: Batch<'_>) {
        let record = batch.record;
        if self.logs.is_copy(&record) {
            return self.copy_from(now, id, batch.late);
        }
        let author = node_id_of(record.author);
        if !self.verifier.verify(&record) {
            self.forged += 1;
            return self.doom(id, Cause::Forged { author });
        }
        if !self.within_rate(now, author, u64::from(record.count)) {
            return;
        }
        let mut out = mem::take(&mut self.deliveries);
        match self.logs.admit(now, &record, batch.late, &mut out) {
            Admission::Known => self.copy_from(now, id, batch.late),
            Admission::Refused(why) => debug!("lines of {author} from {id} not taken: {why}"),
            Admission::New { gap, .. } => {
                self.sync_later(now);
                let (key, first, end) = run_of(&record);
                if !batch.late {
                    self.tree_took(id, key);
                }
                if let Some(hops) = next_hops(batch.hops.min(self.cfg.hop_limit)) {
                    self.frame_buf.clear();
                    Batch::encode(&mut self.frame_buf, hops, batch.late, record.bytes());
                    self.spread(now, Some(id), key, first, end);
                }
                if gap {
                    self.ask_for_gap(now, key);
                }
            }
        }
        self.deliveries = out;
        self.show(now);
        self.arm_order_timer();
    }

    /// Lines that waited for a predecessor long enough go out, gaps and all.
    pub(super) fn order_due(&mut self, now: Instant) {
        let mut out = mem::take(&mut self.deliveries);
        self.logs.expire(now, &mut out);
        self.deliveries = out;
        self.show(now);
        self.arm_order_timer();
    }

    fn arm_order_timer(&mut self) {
        let at = self.logs.next_deadline();
        if at != self.order_deadline {
            let slot = &mut self.order_deadline;
            self.fx.timers.set(ConnId::NODE, Timer::Order, slot, at);
        }
    }

    /// Writes the lines the logs released to every client, each author's in order.
    fn show(&mut self, now: Instant) {
        let mut out = mem::take(&mut self.deliveries);
        let wall_ms = self.wall_ms(now);
        let shown = if self.clients > 0 { out.len() } else { 0 };
        for delivery in out.drain(..).take(shown) {
            let record = Record::parse(&delivery.record).expect("kept records are valid");
            let author = node_id_of(record.author);
            let skip = usize::try_from(delivery.from - record.first).expect("within a batch");
            let take = usize::try_from(delivery.to - delivery.from).expect("within a batch");
            for (i, line) in record.lines().skip(skip).take(take).enumerate() {
                let nick = self.nicks.display(now, line.nick, author);
                if i == 0 && delivery.missing > 0 {
                    let missing = delivery.missing;
                    self.notify_clients(
                        now,
                        format_args!("{missing} lines of {nick} ({author}) are missing"),
                    );
                }
                let late = delivery.late && line.time_ms.saturating_add(LATE_AFTER_MS) < wall_ms;
                if late && !self.late_shown {
                    self.notify_clients(
                        now,
                        format_args!("late lines follow, written while out of reach of this node"),
                    );
                }
                self.late_shown = late;
                self.irc_chat(author, &nick, line.text, line.time_ms);
                self.line_buf.clear();
                control::write_chat(&mut self.line_buf, &nick, line.text);
                self.send_line_to_clients(now, None);
            }
        }
        self.deliveries = out;
    }

    /// Asks every linked peer for the lines of `key` this node lacks.
    fn ask_for_gap(&mut self, now: Instant, key: FeedKey) {
        let Some(entry) = self.logs.summary_of(key) else {
            return;
        };
        self.frame_buf.clear();
        Have::encode(&mut self.frame_buf, &[entry], false);
        self.send_frame_to_peers(now, None);
    }

    /// Tells `to` (or every linked peer) what this node holds of every author.
    pub(super) fn send_summary(&mut self, now: Instant, to: Option<ConnId>) {
        self.frame_buf.clear();
        Have::encode(&mut self.frame_buf, &self.logs.summary(), true);
        for (_, conn) in &mut self.conns {
            if !conn.is_linked() || to.is_some_and(|id| id != conn.id) {
                continue;
            }
            (self.fx).enqueue(conn, &self.frame_buf, now, &self.cfg.limits);
            if let Some(remote) = conn.peer_mut().and_then(|p| p.remote_mut()) {
                remote.summary_sent = Some(now);
            }
        }
    }

    /// New lines were taken: a summary round is due in a while, if none is.
    fn sync_later(&mut self, now: Instant) {
        if self.sync_deadline.is_none() {
            let slot = &mut self.sync_deadline;
            let at = Some(now + SYNC_INTERVAL);
            self.fx.timers.set(ConnId::NODE, Timer::Sync, slot, at);
        }
    }

    /// The round is due: every linked peer gets a summary.
    pub(super) fn sync_due(&mut self, now: Instant) {
        self.send_summary(now, None);
    }

    /// Part of a peer's summary: once it is whole, what the peer lacks is planned and
    /// sent, oldest first per author, behind the live lines.
    pub(super) fn peer_have(&mut self, now: Instant, id: ConnId, have: Have<'_>) {
        let max = self.cfg.max_authors;
        let remote = self.conns[id.slot].peer_mut().and_then(|p| p.remote_mut());
        let Some(remote) = remote else {
            return;
        };
        for entry in have.iter() {
            if remote.summary.len() < max {
                let key = FeedKey {
                    author: NodeId(entry.author),
                    epoch: entry.epoch,
                };
                remote.summary.insert(key, Seen::from_ranges(entry.ranges));
            }
        }
        if have.more {
            return;
        }
        let summary = mem::take(&mut remote.summary);
        let plan = self.logs.plan(&summary, have.complete);
        Logs::merge_plans(&mut remote.catch_up, plan);
        // A peer that had a whole summary from this node lately is sending what it lacks
        // already. Questions are answered with records, never with questions.
        let answering = (remote.summary_sent)
            .is_some_and(|at| now.saturating_duration_since(at) < SYNC_INTERVAL);
        if have.complete && !answering {
            let questions = self.logs.lacking(&summary);
            if !questions.is_empty() {
                self.frame_buf.clear();
                Have::encode(&mut self.frame_buf, &questions, false);
                let conn = &mut self.conns[id.slot];
                (self.fx).enqueue(conn, &self.frame_buf, now, &self.cfg.limits);
            }
        }
        self.top_up(now, id);
    }

    /// Queues catch-up records for `id` while its queue has room for them.
    pub(super) fn top_up(&mut self, now: Instant, id: ConnId) {
        loop {
            let Some(conn) = self.conns.get_mut(id.slot).filter(|c| c.id == id) else {
                return;
            };
            let mark = self.cfg.limits.queue_pause / CATCH_UP_SHARE;
            if conn.closing || conn.queue.len() >= mark {
                return;
            }
            let Some(remote) = conn.peer_mut().and_then(|p| p.remote_mut()) else {
                return;
            };
            let Some(plan) = remote.catch_up.front_mut() else {
                // Members after lines: a newly linked peer is told every one.
                if self.send_next_member(now, id) {
                    continue;
                }
                return;
            };
            let Some(record) = self.logs.next_for(plan) else {
                remote.catch_up.pop_front();
                continue;
            };
            self.frame_buf.clear();
            Batch::encode(&mut self.frame_buf, self.cfg.hop_limit, true, &record);
            let conn = &mut self.conns[id.slot];
            (self.fx).enqueue(conn, &self.frame_buf, now, &self.cfg.limits);
        }
    }

    /// Whether `id` has catch-up records waiting for room in its queue.
    pub(super) fn catching_up(&self, id: ConnId) -> bool {
        self.get(id)
            .and_then(Conn::peer)
            .and_then(|p| p.remote())
            .is_some_and(|r| !r.catch_up.is_empty() || r.members_cursor.is_some())
    }

    /// `/history N`: the newest lines of the backlog, oldest first.
    pub(super) fn reply_history(&mut self, now: Instant, id: ConnId, n: usize) {
        let lines = self.logs.history(n.min(MAX_HISTORY));
        let count = lines.len();
        for (record, seq) in lines {
            let parsed = Record::parse(&record).expect("kept records are valid");
            let author = node_id_of(parsed.author);
            let skip = usize::try_from(seq - parsed.first).expect("within a batch");
            let line = parsed.lines().nth(skip).expect("within a batch");
            let nick = self.nicks.shown(now, line.nick, author);
            let time = text::rfc3339(line.time_ms);
            let text = text::sanitize(line.text);
            self.reply(now, id, format_args!("history {time} <{nick}> {text}"));
        }
        self.reply(now, id, format_args!("{count} lines"));
    }

    /// The time on the Unix clock, in milliseconds, as this node's start and `now` say.
    pub(super) fn wall_ms(&self, now: Instant) -> u64 {
        let since_start = now.saturating_duration_since(self.started).as_nanos();
        let ns = u128::from(self.cfg.epoch) + since_start;
        u64::try_from(ns / 1_000_000).unwrap_or(u64::MAX)
    }
}

/// The author run a record belongs to and its lines' sequence numbers.
fn run_of(record: &Record<'_>) -> (FeedKey, u64, u64) {
    let key = FeedKey {
        author: node_id_of(record.author),
        epoch: record.epoch,
    };
    (key, record.first, record.first + u64::from(record.count))
}

/// The hop count to forward a copy with, or `None` when it has used up its hops.
fn next_hops(hops: u8) -> Option<u8> {
    hops.checked_sub(1).filter(|&left| left > 0)
}
