//! The node's one timer table: every deadline of every connection, ordered by time, so
//! that the driver needs to know only the earliest.

use std::collections::BTreeSet;
use std::time::Instant;

use super::ids::ConnId;

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// The end of a connection's current phase: a dialled peer must connect, a peer
    /// must say hello, a client that has left must take its last replies, by then.
    Deadline,
    /// A congested connection is checked for progress then.
    Stall,
    /// A linked peer that has been quiet is pinged, or dropped as silent, then.
    Keepalive,
    /// The node checks its number of dialled links against the target then (node-level,
    /// under `ConnId::NODE`).
    Degree,
    /// Lines waiting for a missing predecessor give up waiting then (node-level).
    Order,
    /// This node announces itself to the mesh then (node-level).
    Announce,
    /// Gathered joins are told, and the member table swept, then (node-level).
    Members,
    /// Linked peers are sent a summary of what this node holds then, a while after it
    /// took new lines (node-level).
    Sync,
    /// Gathered ids go to lazy links, and announced lines still missing are grafted,
    /// then (node-level, with broadcast trees).
    Tree,
    /// The node sends its next random walk then (node-level, with discovery).
    Walk,
}

/// Armed deadlines. Each connection holds the instant it armed for each [`Timer`] (its
/// slot), which is how an entry is found again to be moved or cancelled.
#[derive(Debug, Default)]
pub struct Timers {
    due: BTreeSet<(Instant, ConnId, Timer)>,
}

impl Timers {
    /// Moves `conn`'s `timer` from whatever `slot` holds to `at` (`None` cancels it).
    pub fn set(
        &mut self,
        conn: ConnId,
        timer: Timer,
        slot: &mut Option<Instant>,
        at: Option<Instant>,
    ) {
        if let Some(old) = slot.take() {
            self.due.remove(&(old, conn, timer));
        }
        if let Some(at) = at {
            self.due.insert((at, conn, timer));
            *slot = Some(at);
        }
    }

    /// The earliest armed deadline.
    pub fn next(&self) -> Option<Instant> {
        self.due.first().map(|&(at, _, _)| at)
    }

    /// Removes and returns a deadline that is due at `now`, earliest first. The caller
    /// must clear the connection's slot for it.
    pub fn pop_due(&mut self, now: Instant) -> Option<(ConnId, Timer)> {
        let &(at, conn, timer) = self.due.first()?;
        if at > now {
            return None;
        }
        self.due.pop_first();
        Some((conn, timer))
    }

    /// How many deadlines are armed.
    pub fn len(&self) -> usize {
        self.due.len()
    }

    /// Whether no deadline is armed.
    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn conn(serial: u64) -> ConnId {
        ConnId {
            serial,
            slot: serial as usize,
        }
    }

    #[test]
    fn fires_in_order_and_only_when_due() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        let (mut a, mut b) = (None, None);
        timers.set(
            conn(1),
            Timer::Deadline,
            &mut a,
            Some(t0 + Duration::from_secs(5)),
        );
        timers.set(
            conn(2),
            Timer::Stall,
            &mut b,
            Some(t0 + Duration::from_secs(2)),
        );
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(2)));
        assert_eq!(timers.pop_due(t0 + Duration::from_secs(1)), None);
        assert_eq!(
            timers.pop_due(t0 + Duration::from_secs(9)),
            Some((conn(2), Timer::Stall))
        );
        assert_eq!(
            timers.pop_due(t0 + Duration::from_secs(9)),
            Some((conn(1), Timer::Deadline))
        );
        assert!(timers.is_empty());
    }

    #[test]
    fn moving_and_cancelling_leave_no_stale_entry() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        let mut slot = None;
        timers.set(conn(1), Timer::Deadline, &mut slot, Some(t0));
        timers.set(
            conn(1),
            Timer::Deadline,
            &mut slot,
            Some(t0 + Duration::from_secs(1)),
        );
        assert_eq!(timers.len(), 1);
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(1)));
        timers.set(conn(1), Timer::Deadline, &mut slot, None);
        assert!(timers.is_empty());
        assert_eq!(slot, None);
    }
}
